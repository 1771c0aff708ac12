namespace HookBroker.Client;

/// <summary>
/// What a hook may know about the event it handles. Declare a parameter of this type to get it; it is never bound from
/// the args.
/// </summary>
public sealed class HookContext
{
    /// <summary>Creates a context.</summary>
    public HookContext(string label, string? eventId = null, int attempt = 1, IReadOnlyDictionary<string, string>? headers = null,
        string? source = null, string? orderingKey = null, DateTimeOffset? raisedAt = null)
    {
        Label = label;
        EventId = eventId;
        Attempt = attempt;
        Headers = headers ?? new Dictionary<string, string>();
        Source = source;
        OrderingKey = orderingKey;
        RaisedAt = raisedAt;
    }

    /// <summary>The label that was raised.</summary>
    public string Label { get; }

    /// <summary>The broker's event id; null for an in-process run.</summary>
    public string? EventId { get; }

    /// <summary>1 on the first delivery, +1 on each redelivery.</summary>
    public int Attempt { get; }

    /// <summary>The raise's headers.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary>Who raised it, when the raiser said.</summary>
    public string? Source { get; }

    /// <summary>The raise's ordering key, if any.</summary>
    public string? OrderingKey { get; }

    /// <summary>When the broker stored the event; null for an in-process run.</summary>
    public DateTimeOffset? RaisedAt { get; }
}
