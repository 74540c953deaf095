//! An HTTP reverse proxy whose set of backends changes at run time.
//!
//! The babysitter runs one proxy per listener name; every replica that
//! exports the listener becomes a backend, and a replica that dies is removed
//! at once.
