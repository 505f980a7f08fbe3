"""epick.simulator"""
