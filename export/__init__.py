"""epick.export"""
