"""app/lab"""
