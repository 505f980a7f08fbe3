"""epick.cuda_kernels"""
