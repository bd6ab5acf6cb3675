"""bioaug.train"""
