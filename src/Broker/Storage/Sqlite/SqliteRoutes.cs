using System.Globalization;
using System.Text;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// How an event row names the groups it went to (<c>routes</c>: ",3,17,") and the retention of each
/// (<c>retain_until</c>, plus <c>retain_overrides</c> "17=ticks;" for the groups whose retention differs).
/// </summary>
internal static class SqliteRoutes
{
    /// <summary>What a group looks for in <c>routes</c> (instr(routes, token) &gt; 0).</summary>
    public static string Token(long groupId) => string.Create(CultureInfo.InvariantCulture, $",{groupId},");

    /// <summary>The routes text of the given groups.</summary>
    public static string Format(List<(SqliteGroupState Group, long RetainUntil)> routed)
    {
        if (routed.Count == 1)
        {
            return routed[0].Group.Token;
        }

        var text = new StringBuilder(routed.Count * 4);
        text.Append(',');
        foreach (var (group, _) in routed)
        {
            text.Append(group.Id.ToString(CultureInfo.InvariantCulture)).Append(',');
        }

        return text.ToString();
    }

    /// <summary>The retention overrides of the groups whose retention is not the first group's; null when none.</summary>
    public static string? FormatOverrides(List<(SqliteGroupState Group, long RetainUntil)> routed)
    {
        StringBuilder? text = null;
        var common = routed[0].RetainUntil;
        for (var i = 1; i < routed.Count; i++)
        {
            var (group, retainUntil) = routed[i];
            if (retainUntil != common)
            {
                (text ??= new StringBuilder())
                    .Append(group.Id.ToString(CultureInfo.InvariantCulture)).Append('=')
                    .Append(retainUntil.ToString(CultureInfo.InvariantCulture)).Append(';');
            }
        }

        return text?.ToString();
    }

    /// <summary>The retention of the event in <paramref name="groupId"/>.</summary>
    public static long RetainUntil(long groupId, long common, string? overrides)
    {
        if (overrides is null)
        {
            return common;
        }

        var rest = overrides.AsSpan();
        while (rest.Length > 0)
        {
            var end = rest.IndexOf(';');
            var item = end < 0 ? rest : rest[..end];
            var equals = item.IndexOf('=');
            if (equals > 0 && long.Parse(item[..equals], CultureInfo.InvariantCulture) == groupId)
            {
                return long.Parse(item[(equals + 1)..], CultureInfo.InvariantCulture);
            }

            rest = end < 0 ? [] : rest[(end + 1)..];
        }

        return common;
    }

    /// <summary>The group ids of a routes text, in order.</summary>
    public static List<long> Parse(string routes)
    {
        var ids = new List<long>(2);
        var rest = routes.AsSpan().Trim(',');
        while (rest.Length > 0)
        {
            var end = rest.IndexOf(',');
            ids.Add(long.Parse(end < 0 ? rest : rest[..end], CultureInfo.InvariantCulture));
            rest = end < 0 ? [] : rest[(end + 1)..];
        }

        return ids;
    }
}
