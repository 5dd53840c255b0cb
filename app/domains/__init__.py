"""app/domains"""
