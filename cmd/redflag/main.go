// Command redflag is the admin CLI, a client of the RedFlag HTTP API.
package main

import (
	"fmt"
	"os"

	"github.com/redflaghq/redflag/internal/version"
)

const usage = `usage: redflag <command>

commands:
  version    print the version, commit and build date
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version", "--version", "-version":
		fmt.Println(version.String("redflag"))
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "redflag: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
