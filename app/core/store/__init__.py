"""app/core/store"""
