"""app/core/store/rows"""
