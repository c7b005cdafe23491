"""After the sale: fulfilment orders, shipments and their tracking (see models.fulfillment)."""
