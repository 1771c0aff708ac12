namespace HookBroker.Broker.Core;

/// <summary>What <see cref="StructWireValidator"/> found in a serialized <c>google.protobuf.Struct</c>.</summary>
/// <param name="Depth">How deep structs and lists nest (the top-level struct is 1); 0 when malformed.</param>
/// <param name="Problem">Why the bytes are not a well-formed Struct (with the byte offset), or null when they are.</param>
internal readonly record struct StructWireShape(int Depth, string? Problem)
{
    /// <summary>Bytes that are not a well-formed Struct.</summary>
    public static StructWireShape Malformed(string problem) => new(0, problem);
}
