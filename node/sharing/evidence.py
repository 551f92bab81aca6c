"""Forwarding a signed case entry to an agency that was not among its recipients.

A case entry travels in an envelope its author signed, end-to-end encrypted
for the members of the moment. When the owner later adds a member, that
member must receive the history *and* be able to show, then and years
later, that each entry is exactly what its author wrote — not merely what
the owner says the author wrote.

The envelope format already makes this possible without a new signature
scheme. The author's signature covers the header, the key blocks and the
ciphertext; the header carries a commitment to the content key. So the
owner, which received the entry (its node holds the author's envelope
verbatim and a key block addressed to it), forwards two things inside its
own envelope to the new member:

* the author's envelope, byte for byte, and
* that envelope's content key, unwrapped from the owner's key block.

The new member verifies the author's signature against the federation
directory, checks the disclosed key against the signed commitment, and
decrypts: the plaintext is then bound to the author's signature as firmly
as if it had been addressed to the new member in the first place. Both
pieces are stored with the entry, so the check can be repeated by anyone
holding them and the directory.

Disclosing a content key opens that one envelope and nothing else (every
envelope has a fresh key). What the key opens is what the author shared
with the case under the case's treaty; the owner forwards an entry this
way only while the current treaty version still allows every field in it
(see :mod:`node.kinds.cases`).

The cryptography (the key unwrap, the commitment check, the AEAD: the
steps :func:`intelshare.envelope.open_envelope` performs, split so that the
key can be handed over between them) is in :mod:`intelshare.envelope`
(:func:`~intelshare.envelope.disclose_content_key`,
:func:`~intelshare.envelope.open_disclosed`), behind the same recipe layer
as every other envelope operation: no node module touches
:mod:`intelshare.hazmat`. Every failure is one
:class:`~intelshare.errors.EnvelopeInvalid`, with the cause in
``audit_detail`` only.
"""

from intelshare.envelope import disclose_content_key, open_disclosed

__all__ = ["disclose_content_key", "open_disclosed"]
