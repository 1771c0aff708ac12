using StackExchange.Redis;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>Decodes what the scripts return.</summary>
internal static class RedisResults
{
    /// <summary>Flat outcomes, six values each: id, group, kind (H|F|D), attempt, error (optional), will retry (0|1).</summary>
    public static List<OutcomeNotice> Outcomes(IReadOnlyList<string> flat)
    {
        var list = new List<OutcomeNotice>(flat.Count / 6);
        for (var i = 0; i + 5 < flat.Count; i += 6)
        {
            list.Add(Outcome(flat, i));
        }

        return list;
    }

    public static OutcomeNotice Outcome(IReadOnlyList<string> flat, int at)
    {
        var kind = flat[at + 2] switch
        {
            "H" => OutcomeKind.Handled,
            "F" => OutcomeKind.Failed,
            "D" => OutcomeKind.DeadLettered,
            var other => throw new FormatException($"Unknown outcome kind '{other}'."),
        };
        return new OutcomeNotice(
            RedisValues.ToLong(flat[at]),
            flat[at + 1],
            kind,
            RedisValues.ToInt(flat[at + 3]),
            RedisValues.FromOptional(flat[at + 4]),
            flat[at + 5] == "1");
    }

    public static string[] Strings(RedisResult result) =>
        result.IsNull ? [] : [.. ((RedisResult[])result!).Select(r => r.ToString())];

    public static RedisResult[] Items(RedisResult result) => result.IsNull ? [] : (RedisResult[])result!;
}
