package discord

import (
	"net/url"
	"strconv"

	"github.com/bwmarrin/discordgo"
)

// Permissions are the channel permissions Parley's bot is invited with
// (the README's invite URL holds them as a number):
//
//   - View Channels: see the channels it is mentioned in;
//   - Send Messages: answer in a channel (DISCORD_REPLY_MODE=reply);
//   - Send Messages in Threads: answer in the thread of a mention;
//   - Create Public Threads: start that thread (DISCORD_REPLY_MODE=thread);
//   - Read Message History: read a thread's earlier messages, the message
//     replied to, and what was missed during a reconnect;
//   - Attach Files: upload the videos and images an answer links to;
//   - Add Reactions: react in the channel (people stop an answer with 🛑;
//     reading their reaction needs no permission of the bot's);
//   - Use Slash Commands: /ask, /model, /models, /system, /reset, /help.
const Permissions int64 = discordgo.PermissionViewChannel |
	discordgo.PermissionSendMessages |
	discordgo.PermissionSendMessagesInThreads |
	discordgo.PermissionCreatePublicThreads |
	discordgo.PermissionReadMessageHistory |
	discordgo.PermissionAttachFiles |
	discordgo.PermissionAddReactions |
	discordgo.PermissionUseApplicationCommands

// InviteURL is the OAuth2 URL that adds the application appID to a server
// as a bot with Permissions and its slash commands.
func InviteURL(appID string) string {
	q := url.Values{
		"client_id":   {appID},
		"scope":       {"bot applications.commands"},
		"permissions": {strconv.FormatInt(Permissions, 10)},
	}
	return "https://discord.com/oauth2/authorize?" + q.Encode()
}
