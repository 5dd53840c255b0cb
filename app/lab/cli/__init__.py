"""app/lab/cli"""
