"""Outgoing webhooks: the endpoints staff register at ``/api/admin/webhooks``."""
