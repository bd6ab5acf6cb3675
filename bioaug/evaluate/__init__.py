"""bioaug.evaluate"""
