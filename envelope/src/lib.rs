//! The deployer side of one weavelet.
//!
//! An `Envelope` runs in the deployer process (the babysitter, or any custom
//! deployer). It spawns one child process of the application binary, owns the
//! pair of pipes to the child's weavelet (fd 3: envelope → weavelet, fd 4:
//! weavelet → envelope), performs the handshake and serves the weavelet's
//! requests through an `EnvelopeHandler`.
