// Package abi is the contract between the host side of Mote (the tenders
// that run a unikernel) and the guest side (the library an application
// links): how a guest learns which devices it has and where they are.
//
// A tender describes the guest's devices in a Manifest and hands it to the
// guest in the environment variable named by EnvManifest. The guest validates
// it before use, so a wrong or hostile manifest is an error at start, never a
// misdirected read or write later. The system calls themselves are specified
// in docs/abi.md.
//
// This package is imported by both sides and therefore depends only on the
// standard library.
package abi
