namespace HookBroker.Client.Internal;

/// <summary>The idempotency keys the SDK gives raises that have none of their own.</summary>
internal static class IdempotencyKeys
{
    /// <summary>
    /// A new key: a version 7 UUID (RFC 9562), whose text begins with the millisecond it was made, so keys made one
    /// after another sort one after another. The broker stores keys in an index (a B-tree in the embedded engine):
    /// time-ordered keys land at its end, a few pages per commit, where random ones would each dirty a page of their
    /// own anywhere in it.
    /// </summary>
    public static string New() => Guid.CreateVersion7().ToString("N");
}
