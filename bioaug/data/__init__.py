"""bioaug.data"""
