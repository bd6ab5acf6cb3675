"""bioaug.embed"""
