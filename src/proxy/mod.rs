//! Sans-I/O proxy core and transports (the proxy work fills this in).
