using System.Text.Json;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// A change announced on the notification channel by the node that made it (the scripts publish inside the same atomic
/// step as the change): events available, outcomes, group changes, expired leases.
/// </summary>
internal sealed record RedisNotice(string Node, char Kind, int? Partition, IReadOnlyList<string> Groups, IReadOnlyList<OutcomeNotice> Outcomes, IReadOnlyList<ExpiredLease> ExpiredLeases)
{
    public const char EventsAvailable = 'a';
    public const char OutcomesReached = 'o';
    public const char GroupsChanged = 'g';
    public const char LeasesExpired = 'x';

    /// <summary>Parses a message; null when it is not one of ours.</summary>
    public static RedisNotice? Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("n", out var node)
                || !root.TryGetProperty("t", out var kind)
                || kind.GetString() is not { Length: 1 } k)
            {
                return null;
            }

            int? partition = root.TryGetProperty("p", out var p) && p.ValueKind == JsonValueKind.String && int.TryParse(p.GetString(), out var pn) ? pn : null;
            var groups = root.TryGetProperty("g", out var g) && g.ValueKind == JsonValueKind.Array
                ? [.. g.EnumerateArray().Select(e => e.GetString() ?? string.Empty)]
                : Array.Empty<string>();
            var outcomes = root.TryGetProperty("o", out var o) && o.ValueKind == JsonValueKind.Array
                ? RedisResults.Outcomes([.. o.EnumerateArray().Select(e => e.GetString() ?? string.Empty)])
                : [];
            var expired = new List<ExpiredLease>();
            if (root.TryGetProperty("x", out var x) && x.ValueKind == JsonValueKind.Array)
            {
                var flat = x.EnumerateArray().Select(e => e.GetString() ?? string.Empty).ToArray();
                for (var i = 0; i + 2 < flat.Length; i += 3)
                {
                    expired.Add(new ExpiredLease(flat[i], new LeaseRef(long.Parse(flat[i + 1], System.Globalization.CultureInfo.InvariantCulture), long.Parse(flat[i + 2], System.Globalization.CultureInfo.InvariantCulture))));
                }
            }

            return new RedisNotice(node.GetString() ?? string.Empty, k[0], partition, groups, outcomes, expired);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or OverflowException or InvalidOperationException)
        {
            return null;
        }
    }
}
