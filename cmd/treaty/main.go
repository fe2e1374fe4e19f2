// Command treaty runs Treaty's services (treaty serve) and is the admin CLI for them.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
