"""What the link tests share: base64url helpers and a signer that holds the ring's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from itsdangerous import Signer

from partnerkit.links import ED25519, Keyring, LinkKind


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def sign_raw(ring: Keyring, kind: LinkKind, payload: bytes, kid: str | None = None) -> str:
    """Sign any payload with the ring's active key, as a holder of its secret could."""
    document = json.loads(ring.to_json())
    kid = kid or document["active_key_id"]
    secret = unb64(next(k["secret"] for k in document["keys"] if k["kid"] == kid))
    alg = "EdDSA" if ring.algorithm == ED25519 else "HS256"
    header = json.dumps({"alg": alg, "kid": kid, "typ": kind.jws_type}, separators=(",", ":"))
    signing_input = f"{b64(header.encode())}.{b64(payload)}".encode()
    if ring.algorithm == ED25519:
        signature = Ed25519PrivateKey.from_private_bytes(secret).sign(signing_input)
    else:
        derived = Signer(
            secret,
            salt=f"partnerkit.links.{kind.value}",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        ).derive_key()
        signature = hmac.digest(derived, signing_input, "sha256")
    return f"{signing_input.decode()}.{b64(signature)}"
