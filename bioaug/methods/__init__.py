"""bioaug.methods"""
