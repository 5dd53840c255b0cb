"""app/core/style"""
