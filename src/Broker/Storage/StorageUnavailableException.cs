namespace HookBroker.Broker.Storage;

/// <summary>
/// Thrown by an engine when its server cannot be reached or does not answer in time (Redis down, a failover in
/// progress). Whether the operation took effect is unknown; the broker answers UNAVAILABLE so clients retry (raises
/// with their idempotency key).
/// </summary>
public sealed class StorageUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StorageUnavailableException()
        : base("storage is unavailable")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public StorageUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public StorageUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
