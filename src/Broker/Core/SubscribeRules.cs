namespace HookBroker.Broker.Core;

/// <summary>Limits of a subscription.</summary>
public static class SubscribeRules
{
    /// <summary>Largest max in-flight a worker may ask for.</summary>
    public const int MaxInFlightLimit = 10_000;

    /// <summary>Most patterns one worker may declare.</summary>
    public const int MaxPatterns = 1000;

    /// <summary>Longest lease extension.</summary>
    public static readonly TimeSpan MaxLease = TimeSpan.FromHours(1);

    /// <summary>Longest nack delay.</summary>
    public static readonly TimeSpan MaxNackDelay = TimeSpan.FromHours(24);

    /// <summary>Longest error text kept with a failure.</summary>
    public const int MaxErrorLength = 4096;

    /// <summary>Error text cut to <see cref="MaxErrorLength"/>.</summary>
    public static string? TrimError(string? error) =>
        string.IsNullOrEmpty(error) ? null : error.Length <= MaxErrorLength ? error : error[..MaxErrorLength];
}
