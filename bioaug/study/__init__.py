"""bioaug.study"""
