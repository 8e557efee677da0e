package main

import "sort"

func sortActions(actions []resourceAction) {
	sort.Slice(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
}
