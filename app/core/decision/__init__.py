"""app/core/decision"""
