namespace HookBroker.Client.Internal;

/// <summary>
/// The tags (field number &lt;&lt; 3 | wire type) of <c>google/protobuf/struct.proto</c>, shared by the args encoder
/// (<see cref="StructWireEncoder"/>) and the delivery decoder (<see cref="StructWireJsonDecoder"/>):
/// <c>Struct { map&lt;string, Value&gt; fields = 1; }</c>, a map entry <c>{ string key = 1; Value value = 2; }</c>,
/// <c>Value { oneof kind { NullValue null_value = 1; double number_value = 2; string string_value = 3; bool bool_value = 4;
/// Struct struct_value = 5; ListValue list_value = 6; } }</c>, <c>ListValue { repeated Value values = 1; }</c>.
/// </summary>
internal static class StructWireTags
{
    public const byte StructFieldsTag = (1 << 3) | 2;
    public const byte EntryKeyTag = (1 << 3) | 2;
    public const byte EntryValueTag = (2 << 3) | 2;
    public const byte NullTag = (1 << 3) | 0;
    public const byte NumberTag = (2 << 3) | 1;
    public const byte StringTag = (3 << 3) | 2;
    public const byte BoolTag = (4 << 3) | 0;
    public const byte StructTag = (5 << 3) | 2;
    public const byte ListTag = (6 << 3) | 2;
    public const byte ListValuesTag = (1 << 3) | 2;
}
