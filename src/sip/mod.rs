//! Zero-copy SIP message view (the sip work fills this in).
