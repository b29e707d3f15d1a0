"""Bulletin delivery on the shared delivery engine (services/common/delivery).

`plan` is rumor_control's side of the engine: which message a delivery record becomes
(address from the department file, text from the published version, a receipt link) and
what each outcome writes on the bulletin's timeline. `messages` renders the texts; the
engine's reason classes become the contract's in `services.common.delivery.reasons`.
Publishing accepts the deliveries (publishing/requests.py) in the approval's or
retraction's own transaction. Modules are imported by name.
"""
