"""How the sandboxes read the API key a provider's SDK sends."""

from __future__ import annotations

import base64
import binascii


def api_key(authorization: str) -> str:
    """The secret key from ``Bearer <key>`` or, as Stripe and EasyPost also accept (and
    their docs' curl examples use: ``curl -u <key>:``), HTTP Basic with the key as the
    user name; "" when the header holds neither."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0].strip()
    if scheme.lower() == "bearer":
        return credentials.strip()
    return ""
