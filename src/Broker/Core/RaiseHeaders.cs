using HookBroker.Wire;

namespace HookBroker.Broker.Core;

/// <summary>
/// The headers of a raise as the public contract's <c>map&lt;string, string&gt;</c> reads them: a key sent more than once
/// keeps its last value, at the place it first came. The broker reads headers as the map's wire entries
/// (<see cref="HeaderEntry"/>, see <c>Wire/raw_args_messages.proto</c>), so it applies that rule itself.
/// </summary>
internal static class RaiseHeaders
{
    /// <summary>The entries with every key once; <paramref name="entries"/> itself when no key repeats.</summary>
    public static IReadOnlyList<HeaderEntry> LastValueWins(IReadOnlyList<HeaderEntry> entries)
    {
        if (entries.Count < 2)
        {
            return entries;
        }

        var positions = new Dictionary<string, int>(entries.Count, StringComparer.Ordinal);
        List<HeaderEntry>? merged = null;
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (positions.TryGetValue(entry.Key, out var at))
            {
                merged ??= [.. entries.Take(i)];
                merged[at] = entry;
            }
            else
            {
                positions.Add(entry.Key, merged?.Count ?? i);
                merged?.Add(entry);
            }
        }

        return merged ?? entries;
    }
}
