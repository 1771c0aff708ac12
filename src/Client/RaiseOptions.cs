namespace HookBroker.Client;

/// <summary>Per-raise options of <see cref="IHookBrokerClient.ExecuteEventAsync"/>.</summary>
public sealed class RaiseOptions
{
    /// <summary>
    /// Up to 200 chars. A repeat with the same key inside the broker's idempotency window (default 10 min, broker-wide)
    /// returns the first event's id and stores nothing, even if its args differ. Default: null, in which case the client
    /// generates a fresh GUID per call, so its own retries never store the event twice.
    /// </summary>
    public string? IdempotencyKey { get; set; }

    /// <summary>Up to 200 chars. Events with the same key reach each group in raise order, one at a time. Default: null.</summary>
    public string? OrderingKey { get; set; }

    /// <summary>Headers carried to every delivery (a schema tag, anything the app adds). At most 64. Default: none.</summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Wait mode: when set (&gt; 0, at most 5 minutes), the raise returns once every routed group has an outcome, at most
    /// this long; a failed or dead-lettered group throws <see cref="HookFailedException"/>, a group without an outcome by
    /// then is reported <see cref="HookOutcome.TimedOut"/>. Default: null (return once the event is stored).
    /// </summary>
    public TimeSpan? WaitTimeout { get; set; }
}
