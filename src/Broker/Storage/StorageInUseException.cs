namespace HookBroker.Broker.Storage;

/// <summary>
/// Thrown when an engine opens storage that another process holds (the embedded engine's database, opened by another
/// broker with the same data folder). The broker does not start: two brokers writing one database would hand out the
/// same event ids and take each other's leases for abandoned ones.
/// </summary>
public sealed class StorageInUseException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StorageInUseException()
        : base("storage is in use by another process")
    {
    }

    /// <summary>Creates the exception with a message naming the storage.</summary>
    public StorageInUseException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message naming the storage and its cause.</summary>
    public StorageInUseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
