namespace HookBroker.Broker.Storage;

/// <summary>
/// Thrown by an engine when it cannot take more data (disk full, a configured size limit). Nothing of the failed
/// operation was stored; the broker answers RESOURCE_EXHAUSTED with this message.
/// </summary>
public sealed class StorageFullException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StorageFullException()
        : base("storage is full")
    {
    }

    /// <summary>Creates the exception with a message naming the limit.</summary>
    public StorageFullException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message naming the limit and its cause.</summary>
    public StorageFullException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
