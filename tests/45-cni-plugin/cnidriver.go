// cnidriver: a tiny CNI runtime on Debian's libcni (the library cnitool and the container
// runtimes use), for what podman never sends: CHECK. Usage:
//
//	cnidriver add|check|del CONFLIST NETNS CONTAINER_ID IFNAME CNI_ARGS BIN_DIR CACHE_DIR
//
// Loads the conflist, runs the command over the whole chain, prints the result (ADD) and exits
// 0, or prints the plugin's error and exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 9 {
		fmt.Fprintln(os.Stderr, "usage: cnidriver add|check|del CONFLIST NETNS CONTAINER_ID IFNAME CNI_ARGS BIN_DIR CACHE_DIR")
		os.Exit(2)
	}
	cmd, conflist, netns, cid, ifname, cniArgs, binDir, cacheDir := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6], os.Args[7], os.Args[8]
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conflist:", err)
		os.Exit(2)
	}
	rt := &libcni.RuntimeConf{ContainerID: cid, NetNS: netns, IfName: ifname}
	for _, kv := range strings.Split(cniArgs, ";") {
		if p := strings.SplitN(kv, "=", 2); len(p) == 2 {
			rt.Args = append(rt.Args, [2]string{p[0], p[1]})
		}
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{binDir}, cacheDir, nil)
	ctx := context.Background()
	switch cmd {
	case "add":
		res, err := cn.AddNetworkList(ctx, list, rt)
		if err != nil {
			fmt.Println("ADD failed:", err)
			os.Exit(1)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	case "check":
		if err := cn.CheckNetworkList(ctx, list, rt); err != nil {
			fmt.Println("CHECK failed:", err)
			os.Exit(1)
		}
		fmt.Println("CHECK ok")
	case "del":
		if err := cn.DelNetworkList(ctx, list, rt); err != nil {
			fmt.Println("DEL failed:", err)
			os.Exit(1)
		}
		fmt.Println("DEL ok")
	default:
		fmt.Fprintln(os.Stderr, "unknown command", cmd)
		os.Exit(2)
	}
}
