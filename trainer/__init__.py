"""epick.trainer"""
