"""Carriers: the ``ShippingProvider`` protocol and its EasyPost adapter."""
