// Package testutil holds what herd's tests share: free ports and
// certificates for servers on loopback, a check for goroutines left
// running, a wait for a state with a generous backstop (Eventually),
// output written by processes while a test reads it, and the damage a disk
// can do to a queue's data. Tests only: no binary links it
// (TestNotInBinaries).
package testutil
