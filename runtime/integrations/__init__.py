"""Entry points that other programs call: RELION's External job (``epick-relion``), RELION's
built-in Topaz slot (``epick-topaz``). They use the same Picker and writers as ``epick pick``."""
