"""A customer's notifications: written by the ``notifications`` relay subscriber, read and
marked read at ``/api/notifications``, pushed live at ``/api/events/stream``."""
