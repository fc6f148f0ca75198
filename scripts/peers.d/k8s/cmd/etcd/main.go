// Command etcd is etcd's server built from its module: the module that holds etcd's own
// main package uses local replace directives, so it can't be installed directly.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
