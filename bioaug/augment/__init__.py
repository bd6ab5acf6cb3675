"""bioaug.augment"""
