"""Payment providers behind one ``PaymentGateway`` protocol."""
