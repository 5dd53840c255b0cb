"""app/core/store/repos"""
