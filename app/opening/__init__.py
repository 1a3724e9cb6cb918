"""The opening ceremony: custodians unlock their shares, the sealed bids are opened and the
opening record is published. See `app.opening.operations` for the design."""
