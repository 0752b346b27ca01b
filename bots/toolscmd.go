package bots

import (
	"context"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/tools"
)

// toolSetting is the per-scope setting that turns a server's tools on or
// off: "on" or "off". Without one a configured server is on everywhere.
func toolSetting(server string) conversation.Setting {
	return conversation.Setting("tools:" + server)
}

// toolFilter returns which tools j's answer may offer: those of the
// servers not turned off in j's most specific scope that says.
func (e *Engine) toolFilter(ctx context.Context, j *job) func(tools.Tool) bool {
	scopes := scopesFor(j.p.Name(), j.in.Workspace, j.in.Channel, j.conv.Key.Thread, j.in.Author)
	on := map[string]bool{}
	return func(t tools.Tool) bool {
		v, seen := on[t.Server]
		if !seen {
			v = e.serverOn(ctx, t.Server, scopes)
			on[t.Server] = v
		}
		return v
	}
}

// serverOn resolves a server's setting; a store failure leaves it on, as
// configured.
func (e *Engine) serverOn(ctx context.Context, server string, scopes []conversation.Scope) bool {
	v, _, ok, err := e.store.ResolveSetting(ctx, toolSetting(server), scopes...)
	if err != nil {
		e.log.Warn("resolve tools setting", "server", server, "err", err)
		return true
	}
	return !ok || v != "off"
}

const toolsUsage = "`/tools` lists the tools here; admins turn a server's tools on or off with `/tools on SERVER`, `/tools off SERVER` or `/tools clear SERVER`, for this thread (or channel), or add `channel` or `workspace`."

// toolsCommand lists the MCP servers and their tools here, or (admins
// only) turns a server on or off for a thread, channel or workspace.
func (e *Engine) toolsCommand(ctx context.Context, p Platform, cmd Command) CommandReply {
	servers := e.cfg.Tools.Servers()
	if len(servers) == 0 {
		return CommandReply{Text: "No tools are configured (MCP_CONFIG).", Ephemeral: true}
	}
	f := strings.Fields(cmd.Args)
	if len(f) == 0 {
		return e.listTools(ctx, p, cmd, servers)
	}
	verb := strings.ToLower(f[0])
	if (verb != "on" && verb != "off" && verb != "clear") || len(f) < 2 || len(f) > 3 {
		return CommandReply{Text: toolsUsage, Ephemeral: true}
	}
	if !e.toolAdmin(ctx, p, cmd.Workspace, cmd.User, cmd.Roles) {
		return CommandReply{Text: "Only an admin can turn tools on or off.", Ephemeral: true}
	}
	name := f[1]
	known := false
	for _, s := range servers {
		known = known || s.Name == name
	}
	if !known {
		var names []string
		for _, s := range servers {
			names = append(names, "`"+s.Name+"`")
		}
		return CommandReply{Text: fmt.Sprintf("No server `%s`; the servers are %s.", clipName(name), strings.Join(names, ", ")), Ephemeral: true}
	}
	scope, where := toolScope(p, cmd)
	if len(f) == 3 {
		switch strings.ToLower(f[2]) {
		case "workspace":
			scope, where = conversation.Scope{Kind: conversation.ScopeWorkspace, Platform: p.Name(), Workspace: cmd.Workspace}, "in this workspace"
		case "channel":
			scope, where = conversation.Scope{Kind: conversation.ScopeChannel, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel}, "in this channel"
		case "thread":
			if cmd.Thread == "" {
				return CommandReply{Text: "This is not a thread; use `channel` or `workspace`.", Ephemeral: true}
			}
		default:
			return CommandReply{Text: toolsUsage, Ephemeral: true}
		}
	}
	value := map[string]string{"on": "on", "off": "off", "clear": ""}[verb]
	if err := e.store.SetSetting(ctx, scope, toolSetting(name), value); err != nil {
		return e.commandError("tools", err)
	}
	switch verb {
	case "clear":
		return CommandReply{Text: fmt.Sprintf("The tools of `%s` follow the wider setting %s again.", name, where)}
	case "on":
		return CommandReply{Text: fmt.Sprintf("The tools of `%s` are on %s.", name, where)}
	}
	return CommandReply{Text: fmt.Sprintf("The tools of `%s` are off %s.", name, where)}
}

func (e *Engine) listTools(ctx context.Context, p Platform, cmd Command, servers []tools.ServerStatus) CommandReply {
	scopes := scopesFor(p.Name(), cmd.Workspace, cmd.Channel, cmd.Thread, cmd.User)
	var b strings.Builder
	b.WriteString("**Tools here**\n")
	for _, s := range servers {
		v, from, ok, err := e.store.ResolveSetting(ctx, toolSetting(s.Name), scopes...)
		if err != nil {
			return e.commandError("tools", err)
		}
		state := "on"
		if ok && v == "off" {
			state = "off"
		}
		where := "by default"
		if ok {
			where = "(" + scopeName(from.Kind) + ")"
		}
		fmt.Fprintf(&b, "• `%s` (%s): %s %s", s.Name, s.State, state, where)
		if s.Approval {
			b.WriteString(", each call needs approval")
		}
		if s.State == tools.StateConnected && len(s.Tools) > 0 {
			names := make([]string, 0, len(s.Tools))
			for _, t := range s.Tools {
				names = append(names, "`"+t.Remote+"`")
			}
			b.WriteString(": " + strings.Join(names, ", "))
		}
		b.WriteString("\n")
	}
	b.WriteString(toolsUsage)
	return CommandReply{Text: b.String(), Ephemeral: true}
}

// toolScope is where /tools on or off applies without a scope word: the
// thread when in one, else the channel (or DM).
func toolScope(p Platform, cmd Command) (conversation.Scope, string) {
	switch {
	case cmd.Thread != "":
		return conversation.Scope{Kind: conversation.ScopeThread, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel + "/" + cmd.Thread}, "in this thread"
	case cmd.DM:
		return conversation.Scope{Kind: conversation.ScopeChannel, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel}, "in this conversation"
	}
	return conversation.Scope{Kind: conversation.ScopeChannel, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel}, "in this channel"
}

// clipName shortens a name typed by a person for an answer.
func clipName(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
