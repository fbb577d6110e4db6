// Package vfs is the file-system layer under klite's stores: an FS and File
// interface with the operating system's version (OSFS), an in-memory
// version that models what survives a power loss (MemFS and its
// CrashClone), and a wrapper that injects faults and counts operations
// (FaultFS). Stores never touch the os package directly, so every I/O error
// path and every crash point can be tested.
//
// WriteFile and MkdirAllSync are the one durable-write sequence every
// store uses for files and directories that must survive a crash.
package vfs
