"""bioaug.models"""
